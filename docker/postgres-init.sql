-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d/).
-- POSTGRES_DB creates the llmforge metadata database; the MLflow server gets its own.
CREATE DATABASE mlflow OWNER llmforge;
