"""One pane per step. A pane shows its stage's facts and, for the steps that have
choices, a form whose values it hands to the screen as spec changes; it runs nothing."""
