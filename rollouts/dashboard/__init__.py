"""`rollouts dashboard`: a live web view of Rollouts with the CLI's operations."""
