"""Prompt safety filter: every prompt is checked before any credit is reserved."""

from postengine.safety.filter import SafetyCategory, SafetyVerdict, check_prompt, normalise

__all__ = ["SafetyCategory", "SafetyVerdict", "check_prompt", "normalise"]
