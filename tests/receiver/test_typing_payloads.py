"""mypy --strict checks typed payloads: ``PushMessage[Order]`` gives ``msg.payload`` the type
``Order``, and a handler whose annotation does not match the route's model is an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

WRONG = """
from __future__ import annotations

from dataclasses import dataclass

from ironpush import PushMessage, PushRouter

router = PushRouter(verify=False)


@dataclass
class Order:
    id: int


@dataclass
class Refund:
    order_id: int


@router.route("/orders", queue="orders", subscriber="billing", model=Order)
async def billing(msg: PushMessage[Refund]) -> None: ...


@router.route("/refunds", queue="refunds", subscriber="billing", model=Refund)
async def refund(msg: PushMessage[Refund]) -> str:
    return msg.payload.order_id
"""


def mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,  # the project's mypy settings and cache
    )


def test_typed_payloads_type_check_and_mismatches_are_errors(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_payloads.py"
    wrong.write_text(WRONG)
    done = mypy(HERE / "typing_payloads.py", wrong)
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if "typing_payloads.py" in e], done.stdout
    assert len(errors) == 3, done.stdout
    # model=Order but the handler takes PushMessage[Refund]
    assert 'expected "Callable[[PushMessage[Order]], ' in errors[0]
    # a handler must return an outcome (str is none), and its payload's field is an int
    assert 'cannot be "Coroutine[Any, Any, str]"' in errors[1]
    assert 'Incompatible return value type (got "int", expected "str")' in errors[2]
