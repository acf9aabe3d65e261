"""`trainer-platform ssh add-host|list-hosts|remove-host`: SSH passwords for launcher=ssh, encrypted at rest.

The password is read from the terminal (or one line of stdin with --password-stdin), never from argv, so it never
shows in `ps` or the shell history; it is stored with Fernet (launchers/passwords.py)."""

from __future__ import annotations

import argparse
import getpass
import sys

from rich.console import Console
from rich.text import Text

from trainer_platform.cli.common import CliError

NAME = "ssh"
HELP = "store, list or remove SSH passwords for launcher=ssh (encrypted at rest)"
ORDER = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ssh_command", required=True, metavar="ACTION")
    for name, help_ in (("add-host", "store the password of user@host:port"), ("remove-host", "forget it")):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("host")
        p.add_argument("--port", type=int, default=22)
        p.add_argument("--user", required=True)
        if name == "add-host":
            p.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    sub.add_parser("list-hosts", help="the hosts with a stored password", description="the hosts with a password")


def run(args: argparse.Namespace, out: Console) -> int:
    from launchers import passwords
    from launchers.options import SshOptions, parse_options

    try:
        if args.ssh_command == "list-hosts":
            hosts = passwords.list_hosts()
            out.print(Text("\n".join(hosts) if hosts else f"no stored passwords ({passwords.config_dir()})"))
            return 0
        parse_options(SshOptions, {"name": "ssh", "host": args.host, "port": args.port, "user": args.user})
        if args.ssh_command == "remove-host":
            removed = passwords.remove_host(args.host, args.port, args.user)
            label = passwords.host_id(args.host, args.port, args.user)
            out.print(Text(f"{label}: {'removed' if removed else 'no stored password'}"))
            return 0
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for {args.user}@{args.host}:{args.port}: ")
        if not password:
            raise CliError("empty password: nothing stored")
        key = passwords.add_host(args.host, args.port, args.user, password)
        out.print(Text(f"{key}: password stored (encrypted) in {passwords.config_dir()}"))
        return 0
    except passwords.PasswordStoreError as e:
        raise CliError(str(e)) from None
