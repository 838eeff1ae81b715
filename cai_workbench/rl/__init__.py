"Reinforcement learning written out in one place: PPO for language models (CleanRL style)."
