"""SFTP transport (paramiko): envelopes up to one remote folder, receipts down from another.

- Host keys are pinned: the server's key must be in the given known_hosts file
  (OpenSSH format, `[host]:port` for non-22 ports, hashed entries fine). An unknown
  or changed key is refused with a non-retryable error naming the host and the
  SHA256 fingerprint the server offered.
- `send` uploads to `.<name>.part` in the outgoing folder, checks the size, then
  `posix_rename`s it over `<name>` (OpenSSH's posix-rename@openssh.com extension,
  an atomic replace). Peers skip dot files, so they never see half a file; the
  same name sent twice leaves one file; a retry after a broken upload overwrites
  the same `.part` file, so no temp file is left behind once the item is sent.
- `receive` lists the incoming folder (regular files only, dot files skipped,
  oldest first), downloads each up to `max_bytes` (larger ones are logged and
  left alone) and removes nothing; `ack` deletes or moves one to `done_dir`.
- One SSH connection is reused. Any socket/SSH failure drops it and raises
  `TransportError(retryable=True)`; reconnects follow an exponential backoff and,
  while waiting, calls fail fast (no sleeping inside `send`).
- Secrets (password, key passphrase) are resolved at connect time from what the
  caller gave (a string, or the config layer's `Secret` with `.read()`), and never
  appear in logs, errors or repr.

Swapping directions (the sandbox peer): the peer opens the same class with
`outgoing` and `incoming` exchanged.

Not thread-safe: one transport object per worker thread.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import logging
import posixpath
import socket
import stat
import time

import paramiko

from gateway.redact import Hidden, reveal
from gateway.transports.backoff import Backoff
from gateway.transports.base import Check, Incoming, Outgoing, Transport, TransportError

log = logging.getLogger(__name__)

_LINK_ERRORS = (OSError, EOFError, paramiko.SSHException, socket.timeout)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style `SHA256:...` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _ConnectError(TransportError):
    def __init__(self, message: str, retryable: bool, stage: str):
        super().__init__(message, retryable)
        self.stage = stage


def _safe_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise TransportError(f"unsafe remote file name {name!r}", retryable=False)
    return name


class SftpTransport(Transport):
    def __init__(self, host: str, username: str, outgoing: str, incoming: str,
                 known_hosts: str, port: int = 22, key_file: str | None = None,
                 key_passphrase=None, password=None, on_ack: str = "delete",
                 done_dir: str | None = None, connect_timeout: float = 10.0,
                 op_timeout: float = 30.0, backoff_initial: float = 1.0,
                 backoff_max: float = 60.0, max_bytes: int = 50 * 1024 * 1024,
                 name: str = "sftp"):
        if on_ack not in ("delete", "move"):
            raise ValueError(f"on_ack must be 'delete' or 'move', not {on_ack!r}")
        if not key_file and password is None:
            raise ValueError("sftp needs key_file or password")
        self.name = name
        self.host = host
        self.port = int(port)
        self.username = username
        self.outgoing = outgoing.rstrip("/") or "/"
        self.incoming = incoming.rstrip("/") or "/"
        self.known_hosts = str(known_hosts)
        self.key_file = str(key_file) if key_file else None
        self._key_passphrase = Hidden(key_passphrase) if isinstance(key_passphrase, str) else key_passphrase
        self._password = Hidden(password) if isinstance(password, str) else password
        self.on_ack = on_ack
        self.done_dir = (done_dir or posixpath.join(self.incoming, ".done")).rstrip("/")
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self.max_bytes = max_bytes
        self.backoff = Backoff(backoff_initial, backoff_max)
        self._last_retryable = True
        self._ssh: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._done_dir_ready = False

    def __repr__(self) -> str:
        return (f"SftpTransport({self.username}@{self.host}:{self.port}, outgoing={self.outgoing!r}, "
                f"incoming={self.incoming!r}, on_ack={self.on_ack!r})")

    @property
    def where(self) -> str:
        return f"sftp {self.host}:{self.port}"

    # ---- the Transport interface -------------------------------------------------

    def send(self, item: Outgoing) -> None:
        name = _safe_name(item.name)
        final = posixpath.join(self.outgoing, name)
        tmp = posixpath.join(self.outgoing, f".{name}.part")

        def upload(s: paramiko.SFTPClient) -> None:
            with s.open(tmp, "wb") as fh:
                fh.set_pipelined(True)
                fh.write(item.data)
            size = s.stat(tmp).st_size
            if size != len(item.data):
                raise IOError(f"uploaded {size} of {len(item.data)} bytes")
            s.posix_rename(tmp, final)

        self._run(f"upload {final}", upload, cleanup=tmp)
        log.debug("%s: sent %s (%d bytes)", self.where, final, len(item.data))

    def receive(self, limit: int = 100) -> list[Incoming]:
        def fetch(s: paramiko.SFTPClient) -> list[Incoming]:
            entries = [e for e in s.listdir_attr(self.incoming)
                       if not e.filename.startswith(".") and e.st_mode is not None
                       and stat.S_ISREG(e.st_mode)]
            entries.sort(key=lambda e: (e.st_mtime or 0, e.filename))
            out: list[Incoming] = []
            for e in entries:
                if len(out) >= limit:
                    break
                path = posixpath.join(self.incoming, e.filename)
                if (e.st_size or 0) > self.max_bytes:
                    log.warning("%s: %s is %d bytes, over the limit of %d; left on the server",
                                self.where, path, e.st_size, self.max_bytes)
                    continue
                try:
                    with s.open(path, "rb") as fh:
                        fh.prefetch(e.st_size)
                        data = fh.read(self.max_bytes + 1)
                except FileNotFoundError:
                    continue                      # taken by someone else meanwhile
                if len(data) > self.max_bytes:
                    log.warning("%s: %s grew over the limit of %d bytes; left on the server",
                                self.where, path, self.max_bytes)
                    continue
                out.append(Incoming(ref=e.filename, name=e.filename, data=data,
                                    meta={"remote_path": path}))
            return out

        return self._run(f"list {self.incoming}", fetch)

    def ack(self, ref: str) -> None:
        name = _safe_name(ref)
        path = posixpath.join(self.incoming, name)

        def remove(s: paramiko.SFTPClient) -> None:
            if self.on_ack == "delete":
                try:
                    s.remove(path)
                except FileNotFoundError:
                    pass                          # already gone: ack is idempotent
                return
            if not self._done_dir_ready:
                try:
                    s.mkdir(self.done_dir)
                except IOError:
                    pass                          # exists, or the stat below fails with the reason
                s.stat(self.done_dir)
                self._done_dir_ready = True
            try:
                s.posix_rename(path, posixpath.join(self.done_dir, name))
            except FileNotFoundError:
                try:
                    s.stat(path)
                except FileNotFoundError:
                    return                        # already moved: ack is idempotent
                raise

        what = f"move {path} to {self.done_dir}" if self.on_ack == "move" else f"delete {path}"
        self._run(what, remove)

    def check(self) -> list[Check]:
        """Doctor: connect (ignoring backoff), host key, login, folders writable."""
        checks: list[Check] = []
        label = {"connect": f"{self.where} reachable",
                 "hostkey": f"{self.where} host key pinned in {self.known_hosts}",
                 "auth": f"{self.where} login as {self.username}"}
        try:
            ssh, sftp, fp = self._open()
        except _ConnectError as exc:
            for stage in ("connect", "hostkey", "auth"):
                if stage == exc.stage:
                    checks.append(Check(label[stage], False, str(exc)))
                    break
                checks.append(Check(label[stage], True))
            return checks
        checks += [Check(label["connect"], True), Check(label["hostkey"], True, fp),
                   Check(label["auth"], True)]
        dirs = [("outgoing", self.outgoing), ("incoming", self.incoming)]
        if self.on_ack == "move":
            dirs.append(("done", self.done_dir))
        try:
            for what, d in dirs:
                probe = posixpath.join(d, f".swgw-doctor-{int(time.time() * 1000)}")
                try:
                    if what == "done":
                        try:
                            sftp.mkdir(d)
                        except IOError:
                            pass
                    if not stat.S_ISDIR(sftp.stat(d).st_mode or 0):
                        raise IOError(errno.ENOTDIR, "not a directory")
                    with sftp.open(probe, "wb") as fh:
                        fh.write(b"swgw doctor probe\n")
                    sftp.remove(probe)
                    checks.append(Check(f"{self.where} {what} folder {d} writable", True))
                except IOError as exc:
                    checks.append(Check(f"{self.where} {what} folder {d} writable", False,
                                        f"{_reason(exc)}; create it and give {self.username} write access"))
        finally:
            _close_quietly(sftp, ssh)
        return checks

    def close(self) -> None:
        self._drop()

    # ---- connection handling -------------------------------------------------------

    def _run(self, what: str, fn, cleanup: str | None = None):
        sftp = self._client()
        try:
            return fn(sftp)
        except _LINK_ERRORS as exc:
            link_alive = self._ssh is not None and self._ssh.is_active() \
                and not sftp.get_channel().closed \
                and not isinstance(exc, (socket.timeout, EOFError))
            if link_alive and isinstance(exc, IOError) and not isinstance(exc, paramiko.SSHException):
                # The server answered with an SFTP status: the connection is fine.
                if cleanup:
                    try:
                        sftp.remove(cleanup)
                    except Exception:
                        pass
                raise self._status_error(what, exc) from None
            self._drop()
            delay = self.backoff.failed(f"{what}: {_reason(exc)}")
            self._last_retryable = True
            log.warning("%s: connection lost during %s (%s); reconnecting in %.1fs",
                        self.where, what, _reason(exc), delay)
            raise TransportError(f"{self.where}: connection lost during {what}: {_reason(exc)}; "
                                 f"will reconnect in {delay:.1f}s", retryable=True) from None

    def _status_error(self, what: str, exc: IOError) -> TransportError:
        code = getattr(exc, "errno", None)
        if code == errno.ENOENT:
            return TransportError(f"{self.where}: {what}: no such file or folder on the server; "
                                  f"check that the remote folder exists", retryable=False)
        if code == errno.EACCES or code == errno.EPERM:
            return TransportError(f"{self.where}: {what}: permission denied for {self.username}; "
                                  f"grant write access to the remote folder", retryable=False)
        text = _reason(exc)
        if "unsupported" in text.lower():
            return TransportError(f"{self.where}: {what}: the server does not support atomic "
                                  f"posix-rename (posix-rename@openssh.com); use an OpenSSH sftp server",
                                  retryable=False)
        return TransportError(f"{self.where}: {what}: server said: {text}", retryable=True)

    def _client(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._ssh is not None and self._ssh.is_active():
            return self._sftp
        if self._sftp is not None:
            self._drop()                          # closed under us (idle timeout, server restart)
        wait = self.backoff.wait_left()
        if wait > 0:
            raise TransportError(f"{self.where}: not connected; next attempt in {wait:.1f}s "
                                 f"(after {self.backoff.failures} failures; last: {self.backoff.last_error})",
                                 retryable=self._last_retryable)
        try:
            self._ssh, self._sftp, fp = self._open()
        except _ConnectError as exc:
            delay = self.backoff.failed(str(exc))
            self._last_retryable = exc.retryable
            log.warning("%s: connect failed (%s); next attempt in %.1fs", self.where, exc, delay)
            raise
        if self.backoff.failures:
            log.info("%s: reconnected after %d failures", self.where, self.backoff.failures)
        self.backoff.succeeded()
        self._done_dir_ready = False
        log.info("%s: connected as %s (host key %s)", self.where, self.username, fp)
        return self._sftp

    def _open(self) -> tuple[paramiko.Transport, paramiko.SFTPClient, str]:
        """A fresh, verified, logged-in SFTP session. Raises `_ConnectError`."""
        hostkeys = self._load_known_hosts()
        entry = known_hosts_name(self.host, self.port)
        pinned = hostkeys.lookup(entry) or {}
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise _ConnectError(f"{self.where}: cannot connect: {_reason(exc)}; is the server up "
                                f"and the port open?", True, "connect") from None
        ssh = paramiko.Transport(sock)
        try:
            ssh.banner_timeout = ssh.handshake_timeout = ssh.auth_timeout = self.connect_timeout
            self._prefer_pinned_key_types(ssh, pinned)
            try:
                ssh.start_client(timeout=self.connect_timeout)
            except _LINK_ERRORS as exc:
                raise _ConnectError(f"{self.where}: SSH handshake failed: {_reason(exc)}",
                                    True, "connect") from None
            offered = ssh.get_remote_server_key()
            fp = fingerprint(offered)
            if not pinned:
                raise _ConnectError(
                    f"{self.where}: refusing unknown host key {offered.get_name()} {fp}: "
                    f"{entry} is not in {self.known_hosts}. Confirm this fingerprint with the "
                    f"server's operator, then add the key to that file "
                    f"(ssh-keyscan -p {self.port} {self.host}).", False, "hostkey")
            if not any(k.asbytes() == offered.asbytes() for k in pinned.values()):
                pins = ", ".join(f"{k.get_name()} {fingerprint(k)}" for k in pinned.values())
                raise _ConnectError(
                    f"{self.where}: HOST KEY MISMATCH: the server offered {offered.get_name()} {fp}, "
                    f"but {self.known_hosts} pins {pins} for {entry}. This is either a reinstalled "
                    f"server or someone in the middle; verify with the server's operator before "
                    f"updating known_hosts.", False, "hostkey")
            self._authenticate(ssh)
            try:
                sftp = paramiko.SFTPClient.from_transport(ssh)
            except _LINK_ERRORS as exc:
                raise _ConnectError(f"{self.where}: the SFTP subsystem did not start: {_reason(exc)}",
                                    True, "auth") from None
            sftp.get_channel().settimeout(self.op_timeout)
            return ssh, sftp, fp
        except BaseException:
            ssh.close()
            raise

    def _load_known_hosts(self) -> paramiko.HostKeys:
        try:
            return paramiko.HostKeys(self.known_hosts)
        except (OSError, paramiko.SSHException) as exc:
            raise _ConnectError(f"{self.where}: cannot read known_hosts {self.known_hosts}: "
                                f"{_reason(exc)}", False, "hostkey") from None

    @staticmethod
    def _prefer_pinned_key_types(ssh: paramiko.Transport, pinned) -> None:
        """Negotiate a host key type we have a pin for (as OpenSSH does)."""
        wanted = set()
        for kind in pinned.keys():
            wanted.add(kind)
            if kind == "ssh-rsa":
                wanted |= {"rsa-sha2-512", "rsa-sha2-256"}
        opts = ssh.get_security_options()
        keep = [k for k in opts.key_types if k in wanted]
        if keep:
            opts.key_types = keep

    def _authenticate(self, ssh: paramiko.Transport) -> None:
        who = f"{self.where}: login as {self.username}"
        try:
            if self.key_file:
                passphrase = reveal(self._key_passphrase)
                try:
                    pkey = paramiko.PKey.from_path(self.key_file, passphrase)
                except paramiko.PasswordRequiredException:
                    raise _ConnectError(f"{who}: key file {self.key_file} is encrypted; configure "
                                        f"its passphrase (env or file)", False, "auth") from None
                except (OSError, paramiko.SSHException, ValueError) as exc:
                    raise _ConnectError(f"{who}: cannot load key file {self.key_file}: {_reason(exc)}",
                                        False, "auth") from None
                ssh.auth_publickey(self.username, pkey)
            else:
                password = reveal(self._password)
                if not password:
                    raise _ConnectError(f"{who}: no password configured (the env variable or file "
                                        f"is empty)", False, "auth")
                ssh.auth_password(self.username, password)
        except paramiko.AuthenticationException:
            how = f"key {self.key_file}" if self.key_file else "password"
            raise _ConnectError(f"{who} with {how} was refused; check the user and that the "
                                f"server authorizes this {'key' if self.key_file else 'password'}",
                                False, "auth") from None
        except _ConnectError:
            raise
        except _LINK_ERRORS as exc:
            raise _ConnectError(f"{who}: connection lost: {_reason(exc)}", True, "auth") from None

    def _drop(self) -> None:
        sftp, ssh = self._sftp, self._ssh
        self._sftp = self._ssh = None
        _close_quietly(sftp, ssh)


def _close_quietly(sftp, ssh) -> None:
    for obj in (sftp, ssh):
        if obj is not None:
            try:
                obj.close()
            except Exception:
                pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    return text
