module github.com/agentgateway/agentgateway/api

go 1.25.0
