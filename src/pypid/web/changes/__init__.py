"""Changes to an index: uploads, yanks, deletes and promotion."""
