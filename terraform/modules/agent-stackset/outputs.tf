output "stack_set_name" {
  description = "Name of the agent StackSet."
  value       = aws_cloudformation_stack_set.agent.name
}

output "stack_set_id" {
  description = "ID of the agent StackSet."
  value       = aws_cloudformation_stack_set.agent.stack_set_id
}

output "regions" {
  description = "Regions with stack instances."
  value       = sort([for r, instance in aws_cloudformation_stack_set_instance.agent : r])
}
