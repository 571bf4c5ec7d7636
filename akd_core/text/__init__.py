"""Text classification: Hugging Face teachers, csv/jsonl text data, BERT-style students.

Importing this package imports neither torch nor transformers; the submodules that need
them import them.
"""
