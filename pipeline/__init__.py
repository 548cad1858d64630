"""The torch side of govtrain: measure observations, apply decisions, audit every step."""
