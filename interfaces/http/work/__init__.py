"""Routes of the work context: tasks, notifications, assignment rules, settings, templates."""
