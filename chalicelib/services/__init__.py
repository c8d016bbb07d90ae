"""The rules of the control plane. Plain classes that receive their dependencies; no Chalice here."""
