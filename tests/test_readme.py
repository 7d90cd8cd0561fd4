"""The README's Python examples run, in order, in one namespace (as a reader would)."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "non-zero weights: 5" in printed
    assert "(100, 10)" in printed
    n_nonzero = namespace["result"]["n_nonzero"]
    assert n_nonzero.shape == (100,) and n_nonzero[0] >= 5 > n_nonzero[-1]
