"""Fixtures for the moto-backed tests (AWS layer, in-process); the helpers live in awshelpers.py."""

from awshelpers import _fake_env, aws, calls, ctx, ec2, iam  # noqa: F401 - re-exported as fixtures
