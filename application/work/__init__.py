"""Work management: tasks, notifications, assignment rules, business hours, SLAs, templates."""
