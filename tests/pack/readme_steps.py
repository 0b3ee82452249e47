"""
readme_steps.py - the README's "The first five minutes", read from the
README itself so that the tests run the commands as they are written
there: the five numbered commands, then the call and the stop.
"""
import os
import re
import subprocess

from funcpack import ROOT

SECTION = "## The first five minutes"


def _blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end > 0 else None]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def _commands(block):
    out = []
    for line in block.splitlines():
        if not line.strip() or line.startswith("{"):
            continue  # an answer shown after a command
        out.append(re.sub(r"\s+#.*$", "", line))  # the comment
    return out


def steps():
    """The five commands, in order."""
    cmds = _commands(_blocks()[0])
    assert len(cmds) == 5, cmds
    return cmds


def after():
    """The call and the stop that follow."""
    return _commands(_blocks()[1])


def run(cmd, home, port=None, timeout=900, **env):
    """One command with bash in the repository, HOME a temporary
    directory (so ~ and $HOME are private), the host's 127.0.0.1:8080
    replaced by port (the container's own 8080 stays)."""
    if port is not None:
        cmd = cmd.replace("127.0.0.1:8080", "127.0.0.1:%d" % port)
    e = dict(os.environ, HOME=home, **env)
    e.pop("PKG_CONFIG_PATH", None)  # as a new shell has it
    return subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)
