"Judges of answers behind one protocol and registry: rule-based refusal and principle judges, the AI judge, contemplative measures."
