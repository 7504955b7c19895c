#!/bin/sh
# A nightly job from cron for two projects, each with its own service account. Once, by hand:
#   cscs-sa setup --account chem --hosts clariden --user svc_chem --known-hosts cscs.known_hosts
#   cscs-sa setup --account bio --hosts daint --user svc_bio --known-hosts cscs.known_hosts
#   (cscs.known_hosts: the host keys to pin, the lines `cscs-sa known-hosts` printed on a
#   machine you trust; docs/setup-and-host-keys.md, Host keys)
# Then in `crontab -e`:
#   15 2 * * * /home/me/bin/cscs-nightly-two.sh >> /home/me/cscs-nightly-two.log 2>&1
#
# cron gives no API keys: keep each account's key in a file only you can read, named per account
# in ~/.config/cscs-sa/config.json (an account never uses another's key, nor CSCS_API_KEY):
#   { "accounts": {
#       "chem": { "apiKeyFile": "~/.config/cscs-sa/chem.key" },
#       "bio":  { "apiKeyFile": "~/.config/cscs-sa/bio.key" } } }
#   (umask 077; printf '%s' 'CHEM-KEY' > ~/.config/cscs-sa/chem.key; printf '%s' 'BIO-KEY' > ~/.config/cscs-sa/bio.key)
# A JSON config keeps ssh's per-command check as cheap as without one (YAML or JS would load a parser).
# cron's PATH is short: name cscs-sa's folder if npm's global bin is not in it.
set -eu
PATH="$HOME/.npm-global/bin:/usr/local/bin:/usr/bin:/bin"

# The two run side by side: each account refreshes its own certificate once, under its own lock.
(
  rsync -a ~/data/chem/ chem-clariden:/capstor/scratch/cscs/svc_chem/incoming/
  ssh chem-clariden sbatch /capstor/scratch/cscs/svc_chem/nightly.sh
) &
chem=$!
(
  rsync -a ~/data/bio/ bio-daint:/capstor/scratch/cscs/svc_bio/incoming/
  ssh bio-daint sbatch /capstor/scratch/cscs/svc_bio/nightly.sh
) &
bio=$!
# Fail the job if either failed; cscs-sa status shows both accounts' certificates.
fail=0
wait "$chem" || fail=1
wait "$bio" || fail=1
cscs-sa status || true
exit "$fail"
