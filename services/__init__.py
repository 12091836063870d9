"""The lab's FastAPI services: policy, claims, customer and the gateway in front of them."""
