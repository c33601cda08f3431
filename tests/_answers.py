"""A scripted user for the docks' yes/no questions (their ``confirm=`` argument)."""


class Answers:
    """Answer the docks' questions from a list (then "no"), recording every question asked."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.questions: list[str] = []

    def __call__(self, message: str) -> bool:
        self.questions.append(message)
        return self.answers.pop(0) if self.answers else False
