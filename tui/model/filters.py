"""The `/` filter: a container, a provider, an instance of the fleet, and free text, each
optional. Typed into the text field, `container:app`, `provider:openai` and `instance:a` (or
`c:`, `p:`, `i:`) fill the named field, so one line says the whole question."""

from __future__ import annotations

from dataclasses import dataclass

# What `key:value` in the text sets (long and short spellings).
KEYS = {
    "container": "container",
    "c": "container",
    "provider": "provider",
    "p": "provider",
    "instance": "instance",
    "i": "instance",
}


@dataclass(frozen=True, slots=True)
class Filter:
    container: str = ""
    provider: str = ""
    text: str = ""
    instance: str = ""  # the Omen instance that served the request (a fleet's store)

    @classmethod
    def parse(cls, text: str, **fields: str) -> Filter:
        """A filter from the fields given and a line of text whose `key:value` words set
        a field (a word such as `llama3.1:8b`, whose key is none of KEYS, stays text)."""
        values = {name: value.strip() for name, value in fields.items()}
        words = []
        for word in text.split():
            key, colon, value = word.partition(":")
            if colon and value and key.lower() in KEYS:
                values[KEYS[key.lower()]] = value
            else:
                words.append(word)
        return cls(**values, text=" ".join(words))

    @property
    def active(self) -> bool:
        return bool(self.container or self.provider or self.instance or self.text)

    def describe(self) -> str:
        parts = []
        if self.container:
            parts.append(f"container={self.container}")
        if self.provider:
            parts.append(f"provider={self.provider}")
        if self.instance:
            parts.append(f"instance={self.instance}")
        if self.text:
            parts.append(f'"{self.text}"')
        return " ".join(parts)

    def matches_text(self, *fields: object) -> bool:
        """Case-insensitive substring match of the free text in any of the fields."""
        if not self.text:
            return True
        needle = self.text.lower()
        return any(needle in str(value).lower() for value in fields if value is not None)

    # Container, provider and instance match exactly, as the store's indexed filters do.
    def matches_container(self, name: str) -> bool:
        return not self.container or self.container == name

    def matches_provider(self, name: str | None) -> bool:
        return not self.provider or self.provider == name

    def matches_instance(self, name: str | None) -> bool:
        return not self.instance or self.instance == name
