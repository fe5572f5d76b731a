"""`zq`: the command line of ZQuant Scheduler. It talks REST through the gateway (the contract in
docs/contract.md), exactly as the admin page does; see cli/main.py."""
