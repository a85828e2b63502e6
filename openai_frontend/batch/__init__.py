"""OpenAI's Batch API: files, batches, and the runner that sends their lines."""
