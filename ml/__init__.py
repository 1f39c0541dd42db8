"""The customer ML platform: data generation, features, models, promotion, scoring, allocation."""
