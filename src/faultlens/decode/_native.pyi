"""Type stub of the C extension faultlens.decode._native (src/faultlens/decode/native/)."""

from collections.abc import Sequence
from typing import Any

Spec = tuple[Sequence[str], bool]
Decoded = tuple[int, int, str, tuple[Any, ...]]

class SpanDecoder:
    def __init__(
        self,
        span_specs: Sequence[Spec],
        resource_specs: Sequence[Spec],
        exception_specs: Sequence[Spec],
        invalid: type[Exception],
    ) -> None: ...
    def decode(self, data: bytes | bytearray | memoryview, /) -> Decoded | None: ...

def traces_json_to_wire(doc: Any, /) -> bytes | None: ...
