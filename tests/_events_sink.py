"""What the event tests share: a recording chat in place of a connector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Sent = tuple[Mapping[str, Any], str, list[Mapping[str, Any]]]


class Chat:
    """A sink that records what it was asked to post and edit, and fails when told to."""

    def __init__(self) -> None:
        self.posts: list[Sent] = []  # (address, text, buttons)
        self.edits: list[Sent] = []  # (message ref, text, buttons)
        self.fail: list[Exception] = []
        self.fail_edit: list[Exception] = []

    @property
    def posted(self) -> list[str]:
        return [text for _, text, _ in self.posts]

    @property
    def edited(self) -> list[str]:
        return [text for _, text, _ in self.edits]

    async def post_event(self, address: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if self.fail:
            raise self.fail.pop(0)
        self.posts.append((address, text, list(buttons)))
        return {"message_id": len(self.posts)}

    async def edit_event(self, address: Mapping[str, Any], ref: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if self.fail_edit:
            raise self.fail_edit.pop(0)
        self.edits.append((ref, text, list(buttons)))
        return dict(ref)

