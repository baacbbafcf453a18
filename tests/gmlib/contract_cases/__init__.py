"""One module per model family, each exporting CASES: a list of `ContractCase` for tests/gmlib/test_contract.py."""
