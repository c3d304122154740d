"""Pure scoring: decayed signals, fit and disqualifiers, the models, tiers and explanations.

No I/O, no clock, no database: callers pass history and the time in.
"""
