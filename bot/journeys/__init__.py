"""Programs (journeys): the content model, its loader and validator, rendering, progression and grading."""
