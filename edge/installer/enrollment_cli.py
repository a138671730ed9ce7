"""`tollgate-edge enroll` and `tollgate-edge rotate-key`: the gateway's identity commands."""

import argparse
from pathlib import Path
from urllib.parse import urlsplit

from edge.errors import ConfigError
from edge.installer.setup_cli import technician_password
from edge.installer.technician_cli import say_if_no_password, store_technician_password

KEY_FILE = "gateway.key"


def _enroll(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.enrollment import ENROLLMENT_FILE, enroll

    if args.config is not None:
        gateway = load_config(args.config, require_id=False).gateway
        if gateway.declared_id is not None:
            raise ConfigError(
                f"{args.config}: [gateway] id is set ({gateway.declared_id!r}): remove it, "
                "the cloud assigns the id at enrollment"
            )
        if args.cloud is not None and args.cloud.rstrip("/") != gateway.cloud_url:
            raise ConfigError(
                f"--cloud {args.cloud} differs from cloud_url {gateway.cloud_url} in {args.config}"
            )
        cloud_url, data_dir, key_path = (
            gateway.cloud_url,
            gateway.data_dir,
            gateway.private_key_path,
        )
    else:
        if args.cloud is None:
            raise ConfigError("--cloud URL is required with --data-dir")
        cloud_url, data_dir, key_path = args.cloud, args.data_dir, args.data_dir / KEY_FILE
    parts = urlsplit(cloud_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--cloud {cloud_url!r} is not an http(s) URL")
    password = technician_password(args, data_dir)  # before the single-use code is spent
    record = enroll(cloud_url=cloud_url, code=args.code, data_dir=data_dir, key_path=key_path)
    print(
        f"enrolled as gateway {record.gateway_id} (site {record.site_id}); "
        f"id stored in {data_dir / ENROLLMENT_FILE}, private key in {key_path} (never sent)"
    )
    if password is not None:
        print(f"technician password stored in {store_technician_password(data_dir, password)}")
    say_if_no_password(data_dir)
    return 0


def _rotate_key(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.enrollment import rotate_key

    gateway = load_config(args.config).gateway
    rotate_key(
        cloud_url=gateway.cloud_url, gateway_id=gateway.id, key_path=gateway.private_key_path
    )
    print(
        f"gateway {gateway.id}: new key in {gateway.private_key_path} is current; "
        "a running agent signs its next batch with it"
    )
    return 0


def add_enrollment_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    """Add `enroll` and `rotate-key` to the `tollgate-edge` command line."""
    enroll_cmd = commands.add_parser(
        "enroll", help="enroll this gateway with a single-use code from the billing team"
    )
    enroll_cmd.add_argument("--cloud", help="collector URL (default: cloud_url of --config)")
    enroll_cmd.add_argument("--code", required=True, help="enrollment code, TG-XXXX-...")
    where = enroll_cmd.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="site config (TOML) without [gateway] id")
    where.add_argument("--data-dir", type=Path, help="the gateway's data_dir")
    enroll_cmd.add_argument(
        "--technician-password-file",
        type=Path,
        help="the diagnostics page password (default: asked twice on a terminal, else not set)",
    )
    enroll_cmd.set_defaults(handler=_enroll)
    rotate = commands.add_parser(
        "rotate-key", help="make a new gateway key and have the cloud accept it (signed by the old)"
    )
    rotate.add_argument("--config", type=Path, required=True, help="site config (TOML)")
    rotate.set_defaults(handler=_rotate_key)
