"""roleops: give an EC2 instance a role, assume a secondary role from it, and prove every link."""

__version__ = "0.1.0"

# Names shared by setup, teardown, doctor and the docs: one place so they cannot drift.
MANAGED_TAG_KEY = "roleops:managed"
MANAGED_TAG_VALUE = "true"
INLINE_POLICY_NAME = "roleops-assume-roles"
# On roles a stack of `roleops export` made: the stack that owns them (teardown leaves them to the stack).
STACK_TAG_KEY = "roleops:stack"
