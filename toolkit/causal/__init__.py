"""Interventions inside the model: ablation of neuron sets against random controls."""
