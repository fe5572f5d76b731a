"""The user guide's Python example (实时进度查看 → API使用示例) runs unchanged after a login."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from stack import Stack
from tests.integration.api import Api

# The product's user guide is not in this repository: CI provides it at ../shared/seed/ next to
# the checkout (docs/guide.md sums it up).
GUIDE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "scheduler_guide.zh.md"


def guide_client_source() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("#### Python示例：创建并监控任务") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_guide_client_prints_progress_then_success(stack: Stack, admin: Api, tmp_path: Path) -> None:
    source = guide_client_source()
    # Only the two configuration lines change, as the guide tells its reader to do.
    source = source.replace('BASE_URL = "http://localhost:8000"', f'BASE_URL = "{stack.http_url}"')
    source = source.replace('TOKEN = "YOUR_ACCESS_TOKEN"', f'TOKEN = "{admin.token}"')
    # Keep the guide's 30 steps but make each step short, so the test stays fast.
    source = source.replace('"duration_seconds": 30,', '"duration_seconds": 9,')
    script = tmp_path / "guide_client.py"
    script.write_text(source, encoding="utf-8")
    output = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    progress = [int(p) for p in re.findall(r"进度: (\d+)%", output)]
    assert progress, output
    assert progress == sorted(progress) and 0 < progress[0] < 100, output
    assert "[成功] 任务执行完成" in output, output
    assert '"progress_percent": 100' in output
