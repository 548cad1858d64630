"""Run configs shipped as package data; `govtrain run` defaults to quickstart.yaml."""
