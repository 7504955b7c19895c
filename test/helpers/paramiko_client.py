"""Connects to HOST the way paramiko's and Fabric's users do, for test/clients.test.ts.

    python3 paramiko_client.py SSH_CONFIG HOST WAIT_SECONDS MODE

MODE: paramiko, paramiko-agent, paramiko-without-invoke, fabric or fabric-agent.
Looks HOST up in SSH_CONFIG (which runs its Match exec), waits WAIT_SECONDS, then connects and
runs `echo hello from paramiko`, printing the command's output. On failure: the exception's
class and message on stderr, exit 1. "-agent": the key may also come from ssh-agent
(SSH_AUTH_SOCK); otherwise only the IdentityFile and the -cert.pub beside it.
"-without-invoke": as if the invoke package were not installed.
"""
import sys
import time

if sys.argv[4].endswith("-without-invoke"):
    sys.modules["invoke"] = None  # import invoke now fails, as where it is not installed

import paramiko  # noqa: E402


def via_paramiko(config_path, host, wait, agent):
    config = paramiko.SSHConfig.from_path(config_path)
    options = config.lookup(host)  # runs Match exec, as ssh would when it reads its config
    time.sleep(wait)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    # paramiko reads ProxyCommand but not ProxyJump: each host takes its own ProxyCommand.
    sock = paramiko.ProxyCommand(options["proxycommand"]) if "proxycommand" in options else None
    client.connect(
        options["hostname"],
        port=int(options.get("port", 22)),
        username=options["user"],
        key_filename=options["identityfile"],  # also loads KEY-cert.pub beside it
        sock=sock,
        allow_agent=agent,
        look_for_keys=False,
    )
    try:
        _, stdout, _ = client.exec_command("echo hello from paramiko")
        return stdout.read().decode()
    finally:
        client.close()


def via_fabric(config_path, host, wait, agent):
    import fabric

    config = fabric.Config(runtime_ssh_path=config_path)
    config.load_ssh_config()
    connect_kwargs = {"allow_agent": agent, "look_for_keys": False}
    # Looks HOST (and its ProxyJump host) up now, running Match exec; connects only on run().
    connection = fabric.Connection(host, config=config, connect_kwargs=connect_kwargs)
    time.sleep(wait)
    try:
        return connection.run("echo hello from paramiko", hide=True, in_stream=False).stdout
    finally:
        connection.close()


def main():
    config_path, host, wait, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    drive = via_fabric if mode.startswith("fabric") else via_paramiko
    try:
        sys.stdout.write(drive(config_path, host, wait, mode.endswith("-agent")))
    except Exception as err:  # noqa: BLE001 -- the test asserts on what a user would see
        sys.stderr.write("{}: {}\n".format(type(err).__name__, err))
        sys.exit(1)


main()
