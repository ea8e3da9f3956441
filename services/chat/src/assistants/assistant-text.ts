/** What a private assistant keeps sealed: its name and instructions, as one JSON text under its creator's key. */
export interface AssistantText {
  name: string;
  instructions: string;
}

export const assistantText = (t: AssistantText): string => JSON.stringify({ name: t.name, instructions: t.instructions });

export const openedAssistantText = (text: string): AssistantText => JSON.parse(text) as AssistantText;
