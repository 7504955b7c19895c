#!/bin/sh
# A nightly job from cron. Once, by hand: install cscs-sa (README: Install; without root, into
# ~/.local: npm install -g --prefix ~/.local ./cscs-sa-0.1.0.tgz), then
#   cscs-sa setup --hosts clariden --api-key-file -
#     (paste the API key: cron gives no CSCS_API_KEY, so setup keeps it in
#     ~/.config/cscs-sa/api-key, 0600, and names it in ~/.config/cscs-sa/config.json)
#   cscs-sa known-hosts > cscs.known_hosts
#     (on a machine and network you trust: compare the fingerprints it prints)
#   cscs-sa setup --known-hosts cscs.known_hosts
#     (setup keeps --hosts clariden from the first run)
#   cscs-sa doctor sa-clariden
# Then in `crontab -e`:
#   15 2 * * * /home/me/bin/cscs-nightly.sh >> /home/me/cscs-nightly.log 2>&1
#
# cron's PATH is /usr/bin:/bin: setup names cscs-sa and node by absolute path in the ssh config
# when that PATH would not find them, so ssh, rsync and scp work without a PATH line here.
set -eu

rsync -a ~/data/incoming/ sa-clariden:/capstor/scratch/cscs/svc_name/incoming/
ssh sa-clariden sbatch /capstor/scratch/cscs/svc_name/nightly.sh
