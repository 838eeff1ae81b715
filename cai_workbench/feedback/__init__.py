"AI feedback: preference labellers, their quality against human labels, reward-model scoring and prompt relevance."
