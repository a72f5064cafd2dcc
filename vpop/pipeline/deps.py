"""What the stages may use, passed in (STYLE rule 6): no globals below the shell."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from vpop.aaa.reply import ReplyRenderer
from vpop.aaa.subscribers import SubscriberDirectory
from vpop.config import Settings
from vpop.radius.dictionary import Dictionary


@dataclass(slots=True, kw_only=True)
class Deps:
    settings: Settings
    directory: SubscriberDirectory
    dictionary: Dictionary
    replies: ReplyRenderer
    accounting: Any  # has record(packet, client, now) -> AcctRecord | None
    rng: random.Random = field(default_factory=random.SystemRandom)
    # PBKDF2 hash -> keyed fingerprint of the password last verified against it
    verified: dict[str, bytes] = field(default_factory=dict)
