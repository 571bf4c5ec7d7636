"""Teachers run in a separate, confined process: see proxy (parent), child and rights."""
