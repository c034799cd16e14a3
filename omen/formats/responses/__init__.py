"""OpenAI Responses clients (`POST /v1/responses`: Codex CLI, the Agents SDK): their request in
as an OpenAI chat body, the gateway's chat completion or chunk stream out as a Responses object
or event stream — whichever provider answered.

Omen is stateless here: `store: false`, the whole history in `input` every turn. Tool kinds chat
has no word for travel as function tools: a `namespace`'s tools flattened to
`<namespace>__<name>` (Codex's own canonical flat name, `ToolName::canonical_flat_name`), a
`custom` (free-form) tool as a function taking one string `input`. The tool table built from the
request maps a chat tool call back to the item the client dispatches on: a `function_call` with
its `namespace`, or a `custom_tool_call`.

- `tools`: the tool table — flattening namespace and custom tools, mapping chat names back.
- `request`: `to_chat`, the request body and its `input` items as chat messages.
- `response`: `from_chat`, usage in both shapes, the response envelope and its output items.
- `stream`: `ResponsesEncoder`, chat chunks as Responses events, and the `response.failed`
  codes.
"""

from omen.formats.responses.request import to_chat
from omen.formats.responses.response import (
    custom_input,
    from_chat,
    new_id,
    usage_from_responses,
    usage_to_responses,
)
from omen.formats.responses.stream import ResponsesEncoder, failed_code, failed_error
from omen.formats.responses.tools import ToolOrigin, ToolTable, flat_name, tool_table

__all__ = [
    "ResponsesEncoder",
    "ToolOrigin",
    "ToolTable",
    "custom_input",
    "failed_code",
    "failed_error",
    "flat_name",
    "from_chat",
    "new_id",
    "to_chat",
    "tool_table",
    "usage_from_responses",
    "usage_to_responses",
]
