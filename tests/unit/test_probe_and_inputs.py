"""A probe an upstream cannot answer is not a sick upstream; token ids are not text."""

from __future__ import annotations

import pytest

from omen.providers.base import UpstreamError, failed_probe
from omen.providers.ollama import OllamaProvider


@pytest.mark.parametrize("status", [404, 405])
def test_a_probe_answered_404_or_405_means_unsupported_not_unhealthy(status: int) -> None:
    probe = failed_probe(UpstreamError(status, "no /models here"), 3.0)
    assert probe.healthy and probe.error is None


def test_a_probe_that_fails_otherwise_is_unhealthy_with_its_reason() -> None:
    probe = failed_probe(UpstreamError(503, "overloaded"), 3.0)
    assert not probe.healthy and probe.error == "overloaded"


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2], [3]]])
async def test_ollama_refuses_token_ids_instead_of_embedding_them_wrongly(tokens: object) -> None:
    provider = OllamaProvider("ollama", timeout=1, connect_timeout=1)
    with pytest.raises(UpstreamError) as refused:
        await provider.embed("http://127.0.0.1:1", {"model": "nomic-embed-text", "input": tokens})
    assert refused.value.status == 400 and not refused.value.retryable
    await provider.aclose()
