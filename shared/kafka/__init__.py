"""Holds the Kafka adapters shared by the services: clients, the DLQ, the batch consumer."""
