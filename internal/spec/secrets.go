package spec

import "maps"

// SecretVars are the variables of an attempt of task t whose values are
// secrets: variable name to secret name. Each level overrides the one
// before, as for env: the pipeline's secrets list, the pipeline's
// {secret: NAME} variables, then the task's, and a plain value the task's
// env gives a variable replaces a secret the pipeline gave it. Nil when the
// task receives no secret.
func (p *Pipeline) SecretVars(t *Task) map[string]string {
	if len(p.Secrets)+len(p.SecretEnv)+len(t.Secrets)+len(t.SecretEnv) == 0 {
		return nil
	}
	vars := make(map[string]string, len(p.Secrets)+len(p.SecretEnv)+len(t.Secrets)+len(t.SecretEnv))
	for _, name := range p.Secrets {
		vars[EnvSafe(name)] = name
	}
	maps.Copy(vars, p.SecretEnv)
	for k := range t.Env {
		delete(vars, k)
	}
	for _, name := range t.Secrets {
		vars[EnvSafe(name)] = name
	}
	maps.Copy(vars, t.SecretEnv)
	return vars
}

// SecretParams names the parameters declared secret: true, whose values are
// masked in logs and hidden from API answers.
func (p *Pipeline) SecretParams() []string {
	var names []string
	for _, prm := range p.Params {
		if prm.Secret {
			names = append(names, prm.Name)
		}
	}
	return names
}
