# The two commands of README.md.
#   make run   the whole system, migrated, on http://localhost:4100
#   make test  the test suite against the real PostgreSQL, RabbitMQ and Redis
.PHONY: run test setup lint

setup:
	deploy/local/bootstrap.sh
	deploy/local/backing-services.sh

run: setup
	.venv/bin/python -W ignore -m services.shared.tokens
	.venv/bin/python -W ignore -m services.shared.migrations
	deploy/local/serve.sh

test: setup
	deploy/local/test-tools.sh
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports
