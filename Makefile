# The two commands of README.md.
#   make run   the whole system, migrated, on http://localhost:4100 (mail
#              lands as .eml files in var/mail/)
#   make test  the test suite against the real PostgreSQL, RabbitMQ and Redis
# and, while working on the domain:
#   make unit       the unit tests alone: no database, broker, Redis or browser
#   make typecheck  the static types (mypy, pyproject.toml): reads the code, runs none of it
.PHONY: run test unit typecheck setup lint

setup:
	deploy/local/bootstrap.sh
	deploy/local/backing-services.sh

run: setup
	.venv/bin/python -W ignore -m services.shared.tokens
	.venv/bin/python -W ignore -m services.shared.migrations
	LIFYTP_MAIL_SINK=var/mail deploy/local/serve.sh

test: setup
	deploy/local/test-tools.sh
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy --config-file pyproject.toml
	.venv/bin/python -m pytest $(PYTEST_ARGS)

# Only the virtualenv: the unit tests start nothing and connect to nothing.
# Two pytest plugins no unit test uses cost a second of the budget of 30 s.
unit:
	deploy/local/bootstrap.sh
	.venv/bin/python -m pytest -q -p no:anyio -p no:typeguard tests/unit $(PYTEST_ARGS)

# Only the virtualenv too: mypy starts and connects to nothing.
typecheck:
	deploy/local/bootstrap.sh
	.venv/bin/mypy --config-file pyproject.toml

lint: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy --config-file pyproject.toml
