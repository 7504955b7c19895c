#!/bin/sh
# A nightly job from cron for two projects, each with its own service account. Once, by hand
# (each --api-key-file - reads that account's API key, pasted, into a 0600 file of its own and
# names it in ~/.config/cscs-sa/config.json: cron gives no API keys, and an account never uses
# another's key, nor CSCS_API_KEY):
#   cscs-sa setup --account chem --hosts clariden --api-key-file -
#   cscs-sa setup --account bio --hosts daint --api-key-file -
#   cscs-sa known-hosts --account chem > chem.known_hosts     (on a machine you trust:
#   cscs-sa known-hosts --account bio > bio.known_hosts        compare the fingerprints)
#   cscs-sa setup --account chem --known-hosts chem.known_hosts
#   cscs-sa setup --account bio --known-hosts bio.known_hosts
# Then in `crontab -e`:
#   15 2 * * * /home/me/bin/cscs-nightly-two.sh >> /home/me/cscs-nightly-two.log 2>&1
#
# cron's PATH is /usr/bin:/bin: setup names cscs-sa and node by absolute path in the ssh config
# when that PATH would not find them, so ssh and rsync need nothing here. The PATH line is for
# this script's own `cscs-sa status` only.
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
# Fail the job if either failed. cscs-sa status only shows both accounts' certificates: it
# exits 1 when one is not fresh (the next ssh refreshes it), which is no failure of the job.
fail=0
wait "$chem" || fail=1
wait "$bio" || fail=1
cscs-sa status || true
exit "$fail"
