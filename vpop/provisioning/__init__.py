"""Provisioning: the records vpop serves (NAS clients, ISPs, profiles, subscribers,
leases) checked and written the same way whoever asks, `vpop import`, a portal form or
an API request.

- ``fields``: Field and the checks of single values; Invalid, Context, ProvisioningError
- ``sections``: Section, Entry, Plan, Counts; ``check_table`` for one record on its own
- ``nas``, ``isp``, ``profile``, ``subscriber``, ``lease``: one section each (SECTION)
- ``steps``: ``parse`` a file into a Plan, ``apply`` it to a Session (never commits)

The format is in docs/provisioning.md.
"""

from vpop.provisioning.fields import KEEP, Context, Field, Invalid, ProvisioningError
from vpop.provisioning.hashing import PBKDF2_ITERATIONS
from vpop.provisioning.sections import Counts, Entry, Plan, Section, check_table
from vpop.provisioning.steps import (SECTION_NAMED, SECTIONS, Summary, apply, import_file,
                                     parse)

__all__ = ["KEEP", "PBKDF2_ITERATIONS", "SECTIONS", "SECTION_NAMED", "Context", "Counts",
           "Entry", "Field", "Invalid", "Plan", "ProvisioningError", "Section", "Summary",
           "apply", "check_table", "import_file", "parse"]
