"""The operator page (docs/operators.md): a workshop's unexplained stops, and the reasons people give them."""
