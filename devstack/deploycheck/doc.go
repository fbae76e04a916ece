// Package deploycheck holds static checks of the deployment files
// (docker-compose.yml, deployments/k8s) against the code and the README:
// there is no Docker engine on the development machines, so the compose
// stack is kept correct by construction and checked here.
package deploycheck
