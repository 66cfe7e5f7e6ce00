"""The composition root's builders for parts large enough to stand apart (egress)."""
