"""Lifecycle commands: ``bundle keygen|create|verify|inspect`` and ``store install|activate|rollback|list|update``."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from edgeai.errors import EdgeAIError, InputNameError


def register(sub: Any) -> None:
    bundle = sub.add_parser("bundle", help="create, verify and inspect signed model bundles")
    bsub = bundle.add_subparsers(dest="bundle_command", metavar="ACTION")
    bsub.required = True

    p = bsub.add_parser("keygen", help="make an Ed25519 signing key pair (and an AES-256 key)")
    p.add_argument("--out", "-o", required=True, help="folder for NAME.key (private, 0600) and NAME.pub")
    p.add_argument("--name", default="release", help="file name stem (default: release)")
    p.add_argument("--encryption", action="store_true", help="also write NAME.aeskey (hex, 0600)")
    p.set_defaults(func=cmd_keygen)

    p = bsub.add_parser("create", help="bundle a model: sign it, optionally encrypt it")
    p.add_argument("model")
    p.add_argument("--out", "-o", required=True, help="the bundle file to write (.eai)")
    p.add_argument("--name", required=True, help="model name the device expects")
    p.add_argument("--version", required=True, help="semantic version, e.g. 1.4.0")
    p.add_argument("--signing-key", required=True, help="Ed25519 private key file (PEM)")
    p.add_argument("--target", default="any", help="target the bundle is built for")
    p.add_argument("--expires-days", type=float, default=365.0, help="days until it expires (default 365)")
    p.add_argument("--no-expiry", action="store_true", help="never expire (no freeze protection)")
    p.add_argument(
        "--encrypt-key", help="encrypt with this key: a file path, 'env:NAME', or hex (never stored in the bundle)"
    )
    p.add_argument(
        "--sample-input",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="sample input for the update smoke test (expected output: the model's output now)",
    )
    p.add_argument("--preprocessing", default="", help="preprocessing notes for the integrator")
    p.add_argument("--description", default="")
    p.set_defaults(func=cmd_create)

    p = bsub.add_parser("verify", help="verify signature, integrity, expiry and (optionally) name/target/version")
    p.add_argument("bundle")
    _trust_args(p)
    p.add_argument("--min-version", help="refuse versions older than this (anti-rollback)")
    p.add_argument("--key", help="decryption key (path, 'env:NAME' or hex) to also check decryption")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_verify)

    p = bsub.add_parser("inspect", help="show a bundle's metadata (NOT verified)")
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect_bundle)

    store = sub.add_parser("store", help="manage an on-device model store")
    ssub = store.add_subparsers(dest="store_command", metavar="ACTION")
    ssub.required = True
    p = ssub.add_parser("install", help="verify and install a bundle")
    p.add_argument("store")
    p.add_argument("bundle")
    p.add_argument("--activate", action="store_true", help="activate it too")
    p.add_argument("--keep", type=int, default=3, help="versions to keep (default 3)")
    _trust_args(p)
    p.set_defaults(func=cmd_store_install)
    p = ssub.add_parser("activate", help="activate an installed version")
    p.add_argument("store")
    p.add_argument("version")
    _trust_args(p)
    p.set_defaults(func=cmd_store_activate)
    p = ssub.add_parser("rollback", help="re-activate the previous version")
    p.add_argument("store")
    _trust_args(p)
    p.set_defaults(func=cmd_store_rollback)
    p = ssub.add_parser("list", help="list installed versions")
    p.add_argument("store")
    p.add_argument("--json", action="store_true", help="print JSON")
    _trust_args(p)
    p.set_defaults(func=cmd_store_list)
    p = ssub.add_parser("update", help="download, verify, install, smoke-test and activate a bundle")
    p.add_argument("store")
    p.add_argument("source", help="http(s) URL or local path")
    p.add_argument("--key", help="decryption key (path, 'env:NAME' or hex)")
    p.add_argument("--max-mb", type=float, default=1024.0, help="download size limit in MiB")
    p.add_argument("--keep", type=int, default=3)
    _trust_args(p)
    p.set_defaults(func=cmd_store_update)


def _trust_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trusted-key",
        action="append",
        default=None,
        metavar="FILE",
        help="trusted public key file or folder (repeatable; default $EDGEAI_TRUSTED_KEYS)",
    )
    p.add_argument("--name", dest="expect_name", help="required model name")
    p.add_argument("--target", dest="expect_target", help="required target")


def _key_arg(value: str | None) -> Any:
    if value is None:
        return None
    if value.startswith(("env:", "file:")):
        return value
    if Path(value).expanduser().is_file():
        return Path(value).expanduser()
    return value


def cmd_keygen(args: argparse.Namespace) -> int:
    from edgeai.security import generate_encryption_key, generate_signing_key, key_id, save_public_key, save_signing_key
    from edgeai.security._atomic import atomic_write_bytes

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    priv, pub = out / f"{args.name}.key", out / f"{args.name}.pub"
    if priv.exists():
        raise EdgeAIError(f"{priv} exists; refusing to overwrite a signing key")
    sk = generate_signing_key()
    save_signing_key(sk, priv)
    save_public_key(sk.public_key(), pub)
    print(f"signing key: {priv} (keep it secret)\npublic key:  {pub} (key id {key_id(sk.public_key())[:16]})")
    if args.encryption:
        aes = out / f"{args.name}.aeskey"
        atomic_write_bytes(aes, generate_encryption_key().hex().encode() + b"\n", mode=0o600)
        print(f"encryption key: {aes} (keep it apart from the bundles)")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    import numpy as np

    from edgeai.lifecycle import write_bundle

    out = Path(args.out)
    key = _key_arg(args.encrypt_key)
    if isinstance(key, Path) and key.resolve().parent == out.resolve().parent:
        raise EdgeAIError(
            f"the encryption key {key} is in the bundle's folder {out.parent}: keys must never sit beside "
            "the bundle; move one of them"
        )
    samples: dict[str, Any] = {}
    for item in args.sample_input:
        if "=" not in item:
            raise InputNameError(f"--sample-input {item!r} needs a name: use NAME=FILE.npy")
        name, file = item.split("=", 1)
        samples[name] = np.load(file, allow_pickle=False)
    expires = None if args.no_expiry else timedelta(days=args.expires_days)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = write_bundle(
        out,
        args.model,
        name=args.name,
        version=args.version,
        signing_key=args.signing_key,
        target=args.target,
        expires=expires,
        encryption_key=key,
        sample_inputs=samples or None,
        preprocessing=args.preprocessing,
        description=args.description,
    )
    print(f"wrote {path} ({path.stat().st_size:,} bytes){' encrypted' if key is not None else ''}")
    return 0


def _policy(args: argparse.Namespace, **extra: Any) -> Any:
    from edgeai.security import TrustPolicy

    return TrustPolicy(
        args.trusted_key,
        name=getattr(args, "expect_name", None),
        target=getattr(args, "expect_target", None),
        **extra,
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from edgeai.lifecycle import read_bundle

    key = _key_arg(args.key)
    bundle = read_bundle(
        args.bundle,
        trusted_keys=_policy(args, min_version=args.min_version),
        key=key,
        decrypt_sections=key is not None,
    )
    meta = bundle.metadata
    if args.json:
        print(json.dumps({"ok": True, "signer": bundle.signer, "metadata": meta.model_dump()}, indent=2))
        return 0
    enc = "encrypted" if meta.encryption else "not encrypted"
    print(
        f"OK: {meta.name} {meta.version} for {meta.target} ({meta.format}, {enc}), signed by key "
        f"{bundle.signer[:16]}, expires {meta.expires or 'never'}"
    )
    return 0


def cmd_inspect_bundle(args: argparse.Namespace) -> int:
    from edgeai.lifecycle import inspect_bundle

    meta = inspect_bundle(args.bundle)
    if args.json:
        print(json.dumps({"verified": False, "metadata": meta.model_dump()}, indent=2))
        return 0
    print(f"{args.bundle} (NOT verified; use `edgeai bundle verify`)")
    print(f"  name {meta.name}  version {meta.version}  target {meta.target}  format {meta.format}")
    print(f"  created {meta.created}  expires {meta.expires or 'never'}")
    print(f"  encryption: {meta.encryption['alg'] if meta.encryption else 'none'}")
    for spec in meta.inputs:
        print(f"  input {spec.name}: {spec.dtype}{spec.shape}")
    for entry in meta.files:
        print(f"  section {entry.name}: {entry.size:,} bytes sha256 {entry.sha256[:16]}...")
    if meta.preprocessing:
        print(f"  preprocessing: {meta.preprocessing}")
    return 0


def _store(args: argparse.Namespace) -> Any:
    from edgeai.lifecycle import ModelStore

    return ModelStore(
        args.store,
        trusted_keys=args.trusted_key,
        name=args.expect_name,
        target=args.expect_target,
        keep=getattr(args, "keep", 3),
    )


def cmd_store_install(args: argparse.Namespace) -> int:
    v = _store(args).install(args.bundle, activate=args.activate)
    print(f"installed {v.version}{' (active)' if v.active else ''}")
    return 0


def cmd_store_activate(args: argparse.Namespace) -> int:
    _store(args).activate(args.version)
    print(f"active: {args.version}")
    return 0


def cmd_store_rollback(args: argparse.Namespace) -> int:
    print(f"rolled back; active: {_store(args).rollback()}")
    return 0


def cmd_store_list(args: argparse.Namespace) -> int:
    versions = _store(args).list()
    if args.json:
        print(json.dumps([v.model_dump() for v in versions], indent=2))
        return 0
    if not versions:
        print("no versions installed")
    for v in versions:
        print(f"{'*' if v.active else ' '} {v.version:<16} {v.size:>12,} bytes  installed {v.installed_at}")
    return 0


def cmd_store_update(args: argparse.Namespace) -> int:
    from edgeai.lifecycle import UpdateClient

    client = UpdateClient(_store(args), key=_key_arg(args.key), max_bytes=int(args.max_mb * (1 << 20)))
    result = client.update(args.source)
    reason = f" - {result.reason}" if result.reason else ""
    print(f"{result.status}: {result.version} (previous {result.previous}){reason}")
    return 0 if result.status != "rejected" else 1
