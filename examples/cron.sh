#!/bin/sh
# A nightly job from cron. Once, by hand: install cscs-sa (README: Install; without root, into
# ~/.local: npm install -g --prefix ~/.local ./cscs-sa-0.1.0.tgz), then
#   cscs-sa setup --hosts clariden --user svc_name --known-hosts cscs.known_hosts
#   (cscs.known_hosts: the host keys to pin, the lines `cscs-sa known-hosts` printed on a
#   machine you trust; docs/setup-and-host-keys.md, Host keys)
# Then in `crontab -e`:
#   15 2 * * * /home/me/bin/cscs-nightly.sh >> /home/me/cscs-nightly.log 2>&1
#
# cron gives no CSCS_API_KEY: keep the key in a file only you can read and name it in
# ~/.config/cscs-sa/config.json:  { "apiKeyFile": "~/.config/cscs-sa/api-key" }
#   (umask 077; printf '%s' 'THE-KEY' > ~/.config/cscs-sa/api-key)
# cron's PATH is short: name cscs-sa's folder if npm's global bin is not in it.
set -eu
PATH="$HOME/.local/bin:/usr/local/bin:/usr/bin:/bin"

rsync -a ~/data/incoming/ sa-clariden:/capstor/scratch/cscs/svc_name/incoming/
ssh sa-clariden sbatch /capstor/scratch/cscs/svc_name/nightly.sh
