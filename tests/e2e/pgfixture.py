"""
pgfixture.py - a private PostgreSQL 15 for the end-to-end tests, started
and stopped with tests/pg/pg.sh (its own data directory, a free port on
127.0.0.1, its own socket directory; as root the server runs as the
postgres user).  Python 3 standard library plus the psql client.

    pg = PgServer(logdir).start()     # pg.url: postgresql://postgres@...
    url = pg.create_database("bm")    # the same URL, database bm
    rows = pg.psql(url, "SELECT account, cents FROM accounts")
    pg.pause(); pg.resume()           # stop / start it on the same port
    pg.stop()                         # copies the server log to logdir

A test class starts one in setUpClass and registers pg.stop with
addClassCleanup, so it stops even when setUpClass or a test fails; every
server still running when the interpreter exits (Ctrl-C, SIGTERM turned
into KeyboardInterrupt by run.py) is stopped by an atexit hook.
"""
import atexit
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PG_SH = os.path.join(ROOT, "tests", "pg", "pg.sh")
PG_BIN = "/usr/lib/postgresql/15/bin"
NULL = "\\N"  # how psql prints SQL NULL here; psql() returns None for it
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_LIVE = []
_LIVE_LOCK = threading.Lock()


class PgError(Exception):
    """pg.sh or psql failed; the message holds their output."""


def url_with_database(url, dbname):
    """url with its path (the database) replaced by dbname; the query
    (connect_timeout=...) kept."""
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname,
                                    u.query, u.fragment))


def psql(url, sql, timeout=30):
    """Run sql (one or more statements) with psql against url; returns the
    rows of the last statement's result as lists of str (None for NULL),
    [] for a statement that returns none.  Raises PgError on any error
    (ON_ERROR_STOP)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("PGCONNECT_TIMEOUT", "5")
    cmd = ["psql", url, "-X", "-q", "-A", "-t", "-F", "\x1f", "-0",
           "-P", "null=" + NULL, "-v", "ON_ERROR_STOP=1", "-c", sql]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout,
                           env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PgError("psql timed out after %ss: %s" % (timeout, sql))
    except FileNotFoundError:
        raise PgError("psql not found: install postgresql-client-15 "
                      "(scripts/install-deps.sh)")
    if r.returncode != 0:
        raise PgError("psql %s failed (exit %d): %s\n%s" %
                      (url, r.returncode, sql,
                       r.stderr.decode("utf-8", "replace").strip()))
    out = r.stdout.decode("utf-8")
    if not out:
        return []
    records = out.split("\0")
    if records and records[-1] == "":
        records.pop()
    return [[None if f == NULL else f for f in rec.split("\x1f")]
            for rec in records]


def psql_value(url, sql, timeout=30):
    """The single value of a one-row, one-column query (None if no row)."""
    rows = psql(url, sql, timeout)
    if not rows:
        return None
    if len(rows) != 1 or len(rows[0]) != 1:
        raise PgError("expected one value from %r, got %r" % (sql, rows))
    return rows[0][0]


class PgServer:
    """One throwaway PostgreSQL instance run by tests/pg/pg.sh."""

    def __init__(self, logdir=None, tag="pg"):
        self.logdir = logdir
        self.tag = tag
        self.base = None   # our temp directory (world-traversable)
        self.dir = None    # pg.sh's DIR, inside base
        self.url = None    # .../postgres?connect_timeout=5
        self.port = None
        self.paused = False
        self._dbs = set()

    # -- life cycle --------------------------------------------------------
    def start(self, timeout=120):
        if not os.access(PG_SH, os.X_OK):
            raise PgError("%s is missing or not executable" % PG_SH)
        if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
            raise PgError("%s/initdb missing: PostgreSQL 15 is needed for "
                          "these tests (apt-get install postgresql-15, see "
                          "scripts/install-deps.sh)" % PG_BIN)
        # Not under the run's log directory: mkdtemp makes it 0700, and as
        # root the server runs as postgres, which must reach DIR.
        # As root, /tmp: $TMPDIR may be a directory private to root.
        self.base = tempfile.mkdtemp(
            prefix="zc-e2e-pg-",
            dir="/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp")
            else None)
        os.chmod(self.base, 0o755)
        self.dir = os.path.join(self.base, "pg")
        with _LIVE_LOCK:
            _LIVE.append(self)
        r = self._pg_sh("start", timeout)
        m = None
        for line in r.stdout.decode("utf-8", "replace").splitlines():
            m = re.match(r"^(postgres(?:ql)?://\S+)$", line.strip()) or m
        if r.returncode != 0 or m is None:
            err = self._output(r)
            self.stop()
            raise PgError("pg.sh start failed (exit %d):\n%s" %
                          (r.returncode, err))
        self.url = m.group(1)
        self.port = urllib.parse.urlsplit(self.url).port
        return self

    def _pg_sh(self, cmd, timeout):
        try:
            return subprocess.run(["bash", PG_SH, cmd, self.dir],
                                  capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise PgError("pg.sh %s %s timed out after %ss: %s" %
                          (cmd, self.dir, timeout, e))

    @staticmethod
    def _output(r):
        return (r.stdout + r.stderr).decode("utf-8", "replace").strip()

    def pause(self, timeout=60):
        """Stop the server (pg_ctl -m fast: sessions are terminated); the
        port then refuses connections until resume()."""
        r = self._pg_sh("pause", timeout)
        if r.returncode != 0:
            raise PgError("pg.sh pause failed: %s" % self._output(r))
        self.paused = True

    def resume(self, timeout=90):
        """Start it again: same data, same port."""
        r = self._pg_sh("resume", timeout)
        if r.returncode != 0:
            raise PgError("pg.sh resume failed: %s" % self._output(r))
        self.paused = False

    def stop(self):
        """Stop the server and remove its directory (idempotent); the
        server log is copied to logdir first, if one was given."""
        with _LIVE_LOCK:
            if self in _LIVE:
                _LIVE.remove(self)
        if self.base is None:
            return
        if self.logdir and self.dir:
            try:
                os.makedirs(self.logdir, exist_ok=True)
                shutil.copyfile(os.path.join(self.dir, "log"),
                                os.path.join(self.logdir,
                                             "%s.postgres.log" % self.tag))
            except OSError:
                pass
        try:
            if os.path.isdir(self.dir):
                self._pg_sh("stop", 60)
        except PgError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = self.dir = None

    def pid(self):
        """The postmaster's pid, or None."""
        try:
            with open(os.path.join(self.dir, "pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError, TypeError):
            return None

    # -- databases ---------------------------------------------------------
    def url_for(self, dbname):
        return url_with_database(self.url, dbname)

    def create_database(self, name):
        """CREATE DATABASE name; returns its URL.  name: lower-case
        letters, digits, underscore."""
        if not _NAME.match(name):
            raise ValueError("bad database name %r" % name)
        self.psql(self.url, "CREATE DATABASE %s" % name)
        self._dbs.add(name)
        return self.url_for(name)

    def psql(self, url, sql, timeout=30):
        return psql(url, sql, timeout)

    def value(self, url, sql, timeout=30):
        return psql_value(url, sql, timeout)


def stop_all():
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for s in servers:
        try:
            s.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(stop_all)
