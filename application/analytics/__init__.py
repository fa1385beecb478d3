"""Analytics: pipeline, leads, team and communication figures, reports."""
