"""Import hygiene: the CLI path never imports Textual, and the app's first frame needs neither
torch, pandas, plotext nor the HTTP client."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: str, tmp_path: Path) -> dict:
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(code))
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path),
            "XDG_CACHE_HOME": str(tmp_path),
            "PYTHONPATH": str(ROOT),
        },
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_path_does_not_import_textual(tmp_path):
    found = run(
        """
        import json, sys
        from ftui import cli
        cli.build_parser().parse_args(["jobs", "--json"])
        print(json.dumps({m: m in sys.modules for m in ("textual", "rich", "plotext", "pandas")}))
        """,
        tmp_path,
    )
    assert found == {"textual": False, "rich": False, "plotext": False, "pandas": False}


def test_first_frame_imports_nothing_heavy(tmp_path):
    found = run(
        f"""
        import json, sys
        from pathlib import Path
        from ftui.app import FtuiApp
        from ftui.config import Config
        p = Path({str(tmp_path)!r}) / "config.toml"
        p.write_text('[profiles.x]\\nbase_url = "http://127.0.0.1:9/v1"\\n')
        seen = {{}}

        class Probe(FtuiApp):
            CSS_PATH = str(Path(sys.modules["ftui.app"].__file__).with_name("app.tcss"))

            def on_ready(self):  # Ready is posted once the first frame has been written
                seen.update({{m: m in sys.modules for m in
                             ("torch", "pandas", "plotext", "httpx", "ftui.client",
                              "ftui.prepare")}})
                self.call_later(self.exit)

        app = Probe("x", config=Config.load(p), cache_path=p.with_name("c.sqlite3"), environ={{}})
        app.run(headless=True, size=(80, 24))
        print(json.dumps(seen))
        """,
        tmp_path,
    )
    assert found == {
        "torch": False,
        "pandas": False,
        "plotext": False,
        "httpx": False,
        "ftui.client": False,
        "ftui.prepare": False,
    }
